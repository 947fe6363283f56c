// The annotation page's view of pixel queries (alseg.units.pixel): "what is the class of this pixel?".
// A red cross-hair on the pixel, an 8x zoom around it, one class key answers (the class id).
// The view interface is documented at the top of alseg/annotate/static/app.js.
(() => {
  "use strict";

  const ZOOM = 8;           // inset magnification
  const ZOOM_PIXELS = 22;   // inset canvas side in image pixels (176 / 8)

  alseg.registerUnit("pixel", {
    question: () => "What is the class of the pixel under the <b>red cross-hair</b>?",
    describe: (query) => `pixel (row ${query.y}, column ${query.x})`,
    keyList: (query, page) => page.classKeys(),
    answerFor(key, query, page) {
      const classId = page.classOfKey(key);
      return classId === null ? null : String(classId);
    },
    draw(query, picture, page) {
      page.drawCrosshair(picture.scene, query.y, query.x);
      const half = Math.floor(ZOOM_PIXELS / 2);
      const zoom = page.drawInset(picture.image, query.x - half, query.y - half, ZOOM_PIXELS, ZOOM, `Zoom ×${ZOOM}`);
      page.drawCrosshair(zoom, query.y, query.x);
    },
  });
})();
