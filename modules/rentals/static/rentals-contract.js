// The contract page: a device form shows the counter boxes of the chosen device's meters only (the options carry
// them in data-meters); the other boxes are hidden and disabled, so they are not sent. Without this script every box
// shows and the server still checks that exactly the device's meters are given.
(function () {
  "use strict";
  function follow(select) {
    var form = select.getAttribute("data-meters-select");
    var option = select.options[select.selectedIndex];
    var meters = option && option.value ? (option.getAttribute("data-meters") || "").split(" ") : [];
    document.querySelectorAll('[data-counters="' + form + '"] [data-meter]').forEach(function (box) {
      var shown = meters.indexOf(box.getAttribute("data-meter")) !== -1;
      box.hidden = !shown;
      box.querySelectorAll("input").forEach(function (input) { input.disabled = !shown; });
    });
    document.querySelectorAll('[data-counters-label="' + form + '"]').forEach(function (label) {
      label.hidden = meters.length === 0;
    });
    document.querySelectorAll('[data-counters-hint="' + form + '"]').forEach(function (hint) {
      hint.hidden = meters.length > 0;
    });
  }
  document.querySelectorAll("select[data-meters-select]").forEach(function (select) {
    follow(select);
    select.addEventListener("change", function () { follow(select); });
  });
})();
