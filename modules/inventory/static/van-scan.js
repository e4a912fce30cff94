/* The van page's camera scanner: where the browser has the Barcode Detection API, each "Scan" button opens the camera
   and types the first barcode it reads into its field. Elsewhere the buttons stay hidden: a scanner that types like a
   keyboard, or the keyboard itself, fills the fields. */
(function () {
  "use strict";
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return;
  }
  var overlay = document.getElementById("scanner");
  var video = document.getElementById("scanner-video");
  var stream = null;
  var stop = function () {
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
    stream = null;
    overlay.hidden = true;
  };
  document.getElementById("scanner-close").addEventListener("click", stop);
  var detector = new window.BarcodeDetector();
  document.querySelectorAll("[data-scan]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-scan"));
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false}).then(function (opened) {
        stream = opened;
        video.srcObject = opened;
        overlay.hidden = false;
        return video.play();
      }).then(function look() {
        if (!stream) { return; }
        detector.detect(video).then(function (codes) {
          if (codes.length) {
            field.value = codes[0].rawValue;
            stop();
            field.focus();
          } else {
            window.requestAnimationFrame(look);
          }
        }).catch(function () { window.requestAnimationFrame(look); });
      }).catch(stop);
    });
  });
})();
