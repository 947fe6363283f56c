// The annotation page's view of binary queries (alseg.units.binary): "is there any <class> in this image?",
// answered with the yes and no keys (y, n). No inset: the question is about the whole image.
// The view interface is documented at the top of alseg/annotate/static/app.js.
(() => {
  "use strict";

  alseg.registerUnit("binary", {
    question: (query, page) =>
      `Is there any <span class="cls">${page.escapeHtml(query.class_name)}</span> in this image?`,
    describe: (query) => `class ${query.class_id}`,
    keyList: (query, page) => [
      ...page.session.yes_keys.map((key) => ({ key, answer: "yes", label: "yes, it is in the image" })),
      ...page.session.no_keys.map((key) => ({ key, answer: "no", label: "no, it is not" })),
    ],
    answerFor(key, query, page) {
      if (page.session.yes_keys.includes(key)) return "yes";
      if (page.session.no_keys.includes(key)) return "no";
      return null;
    },
    draw() {},   // the image alone
  });
})();
