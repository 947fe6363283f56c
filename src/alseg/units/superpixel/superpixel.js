// The annotation page's view of superpixel queries (alseg.units.superpixel): "what is the main class of this
// region?". The region outlined (the rest dimmed), a zoom on it, one class key answers (the class id).
// The view interface is documented at the top of alseg/annotate/static/app.js.
(() => {
  "use strict";

  alseg.registerUnit("superpixel", {
    question: () => "What is the main class of the <b>outlined region</b>?",
    describe: (query) => `superpixel ${query.superpixel}`,
    keyList: (query, page) => page.classKeys(),
    answerFor(key, query, page) {
      const classId = page.classOfKey(key);
      return classId === null ? null : String(classId);
    },
    load: async (query, page) => page.decodeRegion(await page.api(query.region_url)),
    draw(query, picture, page) {
      const region = picture.loaded;
      page.drawRegion(picture.scene, region);
      const side = Math.max(region.h, region.w, 8) + 6;
      const scale = page.inset.width / side;
      const sx = Math.round(region.x0 + region.w / 2 - side / 2);
      const sy = Math.round(region.y0 + region.h / 2 - side / 2);
      const zoom = page.drawInset(picture.image, sx, sy, side, scale, `Region ×${scale.toFixed(1)}`);
      page.drawRegion(zoom, region);
    },
  });
})();
