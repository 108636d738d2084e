// Progressive: copy buttons appear only when JavaScript runs; the fields stay selectable without it.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () {
      button.dataset.copied = "yes";
    });
  });
});

// The campaign editor's live audience count: the form counts on its own without JavaScript.
(function () {
  var editor = document.getElementById("editor");
  var out = document.getElementById("audience");
  if (!editor || !out || !window.fetch) return;
  var timer = null;
  function count() {
    var data = new FormData(editor);
    fetch(editor.dataset.audience, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        out.dataset.count = body.count === undefined ? "" : String(body.count);
        out.textContent = body.error || body.text;
      });
  }
  editor.addEventListener("change", function () {
    clearTimeout(timer);
    timer = setTimeout(count, 250);
  });
})();

// The campaign page's progress bar follows the send live; without JavaScript, reload the page.
(function () {
  var bar = document.getElementById("progress");
  var text = document.getElementById("progress-text");
  if (!bar || !window.fetch) return;
  function poll() {
    fetch(bar.dataset.url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        bar.value = body.percent;
        bar.dataset.percent = String(body.percent);
        bar.textContent = body.percent + "%";
        if (text) text.textContent = body.text;
        if (body.percent < 100 && body.status !== "cancelled") setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (bar.dataset.percent !== "100") setTimeout(poll, 1000);
})();
