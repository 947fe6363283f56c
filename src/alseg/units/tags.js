// The annotation page's view of image tags (alseg.units.tags): "mark every class present in this image".
// A class key toggles its class (the key list shows it marked); Enter submits the classes marked (`0;3;5`);
// n submits "none of these" when nothing is marked, so that an unmarked Enter never says every class is
// absent. Backspace takes back the last toggle, and with nothing marked the last answer (the core's undo).
// The seconds run from showing the image to the submitting key. The interface is documented at the top of
// alseg/annotate/static/app.js.
(() => {
  "use strict";

  const SUBMIT = "Enter";
  const NONE_KEY = "n";   // never a class key (alseg.annotate.keys reserves it)
  let marked = [];        // class ids, in the order marked

  alseg.registerUnit("tags", {
    question: () => `Mark <b>every class present</b> in this image, then press <kbd>${SUBMIT}</kbd> `
      + `(<kbd>${NONE_KEY}</kbd>: none of these classes)`,
    describe: () => "the classes of the whole image",
    keyList: (query, page) => [
      ...page.classKeys().map((item) => ({ ...item, on: marked.includes(Number(item.answer)) })),
      { key: SUBMIT, answer: "submit", label: "submit the classes marked" },
      { key: NONE_KEY, answer: "none", label: "none of these classes is in the image" },
    ],
    start() {
      marked = [];
    },
    takeStep(key, query, page) {
      const classId = page.classOfKey(key);
      if (classId === null) return false;
      const at = marked.indexOf(classId);
      if (at >= 0) marked.splice(at, 1); else marked.push(classId);
      page.renderKeys();
      return true;
    },
    answerFor(key) {
      if (key === SUBMIT && marked.length) return [...marked].sort((a, b) => a - b).join(";");
      if (key === NONE_KEY && !marked.length) return "none";
      return null;
    },
    undoStep(query, page) {
      if (!marked.length) return false;
      marked.pop();
      page.renderKeys();
      return true;
    },
    draw() {},   // the whole image is the question
  });
})();
