// Flask-Admin's inline onclick handlers are forbidden by the Content-Security-Policy; core.security turns them into
// data-csp-onclick attributes and this script runs the known ones (nothing else: it never evaluates the text).
(function () {
  "use strict";
  var handlers = [
    [/^return faHelpers\.safeConfirm\('(.*)'\);$/, function (event, el, arg) {
      if (!window.faHelpers.safeConfirm(arg)) { event.preventDefault(); }
    }],
    [/^return confirm\('(.*)'\)$/, function (event, el, arg) {
      if (!window.confirm(arg)) { event.preventDefault(); }
    }],
    [/^return modelActions\.execute\('([\w-]+)'\);$/, function (event, el, arg) {
      event.preventDefault();
      window.modelActions.execute(arg);
    }],
    [/^faForm\.addInlineField\(this, '([\w-]+)'\);$/, function (event, el, arg) {
      event.preventDefault();
      window.faForm.addInlineField(el, arg);
    }],
    [/^return false;$/, function (event) { event.preventDefault(); }]
  ];
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-csp-onclick]");
    if (el) {
      var code = el.getAttribute("data-csp-onclick");
      for (var i = 0; i < handlers.length; i++) {
        var match = handlers[i][0].exec(code);
        if (match) { handlers[i][1](event, el, match[1]); return; }
      }
    }
    if (event.target.closest("a[data-csp-void]")) { event.preventDefault(); }
  });
})();
