// Metering: hints while typing counters (lower than the last reading, not digits). The server checks again.
(function () {
  "use strict";
  var form = document.querySelector("form.readings-form");
  if (!form) return;
  var separators = /[\s.,'\u2019]/g;
  var number = new Intl.NumberFormat(document.documentElement.lang || undefined);

  function say(input, text) {
    var hint = document.getElementById(input.id + "-hint");
    if (hint) hint.textContent = text;
    input.closest(".field").classList.toggle("warned", Boolean(text));
  }

  function checkCounter(input) {
    var raw = input.value.trim();
    if (!raw) return say(input, "");
    var digits = raw.replace(separators, "");
    if (!/^\d+$/.test(digits)) return say(input, form.dataset.msgDigits);
    var previous = input.dataset.previous;
    if (previous !== undefined && Number(digits) < Number(previous)) {
      return say(input, form.dataset.msgLower.replace("{last}", number.format(Number(previous))));
    }
    say(input, "");
  }

  function checkLevel(input) {
    var raw = input.value.trim();
    var ok = !raw || (/^\d+$/.test(raw) && Number(raw) <= 100);
    say(input, ok ? "" : form.dataset.msgPercent);
  }

  form.querySelectorAll("input.counter").forEach(function (input) {
    input.addEventListener("input", function () { checkCounter(input); });
    input.addEventListener("blur", function () { checkCounter(input); });
  });
  form.querySelectorAll("input.level").forEach(function (input) {
    input.addEventListener("input", function () { checkLevel(input); });
  });
})();
