/* The console's small enhancements; every page works without them.
   - <button data-copy="#id">: copies that field's value to the clipboard and says so.
   - <input data-picker="/api/v1/orgs/x/members/" data-picker-field="email" list="id">: as a person
     types, asks the admin API's list (`?q=`, one page of 20) and offers the matches in the datalist,
     so a picker never lists every member of a large org. The typed text is what the form posts. */
(function () {
  "use strict";

  function copy(button) {
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    var text = field.value !== undefined ? field.value : field.textContent;
    var done = function () {
      var status = button.parentNode.querySelector("[data-copy-status]");
      if (status) status.textContent = "Copied to the clipboard.";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { field.select(); });
    } else {
      field.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the field stays selected */ }
    }
  }

  function picker(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var field = input.getAttribute("data-picker-field") || "email";
    var label = input.getAttribute("data-picker-label");
    var timer = null, asked = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var text = input.value.trim();
      if (text.length < 2 || text === asked) return;
      timer = setTimeout(function () {
        asked = text;
        var url = input.getAttribute("data-picker") + "?page_size=20&q=" + encodeURIComponent(text);
        fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (r) { return r.ok ? r.json() : {results: []}; })
          .then(function (body) {
            if (asked !== text) return;
            list.textContent = "";
            (body.results || []).forEach(function (row) {
              var value = field.split(".").reduce(function (o, k) { return o && o[k]; }, row);
              if (!value) return;
              var option = document.createElement("option");
              option.value = value;
              if (label && row[label] && row[label] !== value) option.label = row[label];
              list.appendChild(option);
            });
          })
          .catch(function () { /* offline or refused: the person types the whole value */ });
      }, 200);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) { event.preventDefault(); copy(button); }
  });
  document.querySelectorAll("input[data-picker]").forEach(picker);
})();
