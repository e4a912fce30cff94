// Metering: hints while typing counters (not a whole number, lower than the last reading). A counter is read as the
// server reads it (core.i18n.parse_whole_number, Babel's strict parse_decimal), with the decimal and group symbols
// and group sizes of the page's language that the server put on the form (data-decimal, data-group, data-grouping):
// so the hint refuses what the server will refuse and nothing else. The server checks again and decides.
(function () {
  "use strict";
  var form = document.querySelector("form.readings-form");
  if (!form) return;
  var decimal = form.dataset.decimal || ".";
  var group = form.dataset.group || ",";
  var sizes = (form.dataset.grouping || "3,3").split(",").map(Number);
  var spaces = /[\s\u00a0\u202f\u2009]/g;
  var UNKNOWN = {};

  // Digits with the group symbol, as Babel writes a whole number (NumberPattern._format_int).
  function grouped(digits) {
    var size = sizes[0];
    var out = "";
    while (digits.length > size) {
      out = group + digits.slice(-size) + out;
      digits = digits.slice(0, -size);
      size = sizes[1] || size;
    }
    return digits + out;
  }

  // Babel's _remove_trailing_zeros_after_decimal: "12.345,000" is "12.345"; "12.345," stays as it is.
  function withoutTrailingZeros(text) {
    var at = text.indexOf(decimal);
    if (at < 0) return text;
    var fraction = text.slice(at + decimal.length);
    if (!fraction) return text;
    fraction = fraction.replace(/0+$/, "");
    return fraction ? text.slice(0, at) + decimal + fraction : text.slice(0, at);
  }

  // The counter's digits as the server reads them, null when it will refuse them, UNKNOWN when the hint cannot tell.
  function wholeNumber(raw) {
    var text = raw.replace(spaces, "");
    if (/^[0-9]+$/.test(text)) return text.replace(/^0+(?=\d)/, "");
    if (!text) return null;
    // Python's Decimal, after Babel took the group symbol out and made the decimal symbol a point.
    var plain = text.split(group).join("").split(decimal).join(".").replace(/_/g, "");
    var foreign = plain.replace(/[\x00-\x7f]/g, "");
    // Digits of another script are read by the server (the hint says nothing); letters and other signs are not.
    if (foreign) return /^\p{Nd}+$/u.test(foreign) ? UNKNOWN : null;
    var parts = /^([+-]?)(?=\d|\.\d)(\d*)(?:\.(\d*))?$/.exec(plain);
    if (!parts) return null;
    if (/[1-9]/.test(parts[3] || "")) return null; // a decimal part
    var digits = parts[2].replace(/^0+(?=\d)/, "") || "0";
    if (parts[1] === "-" && digits !== "0") return null; // negative
    if (text.indexOf(group) >= 0) {
      // Strict: with group symbols, the number must be written as Babel writes it.
      var proper = (parts[1] === "-" ? "-" : "") + grouped(digits);
      if (text !== proper && withoutTrailingZeros(text) !== proper) return null;
    }
    return digits;
  }

  function say(input, text) {
    var hint = document.getElementById(input.id + "-hint");
    if (hint) hint.textContent = text;
    input.closest(".field").classList.toggle("warned", Boolean(text));
  }

  function checkCounter(input) {
    var raw = input.value.trim();
    if (!raw) return say(input, "");
    var digits = wholeNumber(raw);
    if (digits === null) return say(input, form.dataset.msgWhole);
    var previous = input.dataset.previous;
    if (digits !== UNKNOWN && previous !== undefined && Number(digits) < Number(previous)) {
      return say(input, form.dataset.msgLower.replace("{last}", grouped(String(Number(previous)))));
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
