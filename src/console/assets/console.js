// hookline console: the little the pages need beyond HTML forms.
// - Live tables: an element with data-live="URL" subscribes to that server-sent event
//   stream; each event carries server-rendered markup (a delivery row or an attempt),
//   which replaces the element with the same key or goes first.
// - Copy buttons (data-copy="input id").
// No inline script anywhere: the Content-Security-Policy allows only this file.
"use strict";

(function () {
  function fragment(html, wrapper) {
    // The markup comes from our own server, escaped by its templates.
    var template = document.createElement("template");
    template.innerHTML = wrapper ? "<table><tbody>" + html + "</tbody></table>" : html;
    var root = wrapper ? template.content.querySelector("tbody") : template.content;
    return root.firstElementChild;
  }

  function liveTable(element) {
    var url = element.getAttribute("data-live");
    var isTable = element.tagName === "TABLE";
    var container = isTable ? element.tBodies[0] : element;
    var keyAttribute = isTable ? "data-delivery" : "data-attempt";
    var eventName = isTable ? "delivery" : "attempt";
    var wrap = element.closest(".table-wrap, .panel") || element.parentElement;
    var status = wrap ? wrap.querySelector(".live-status") : null;
    var empty = wrap ? wrap.querySelector(".empty-row") : null;
    var fresh = 0;
    var source = new EventSource(url);
    source.addEventListener(eventName, function (event) {
      var node = fragment(event.data, isTable);
      if (!node) return;
      var key = node.getAttribute(keyAttribute);
      var existing = null;
      container.querySelectorAll("[" + keyAttribute + "]").forEach(function (candidate) {
        if (candidate.getAttribute(keyAttribute) === key) existing = candidate;
      });
      // Catching up after (re)connecting repeats what the page shows: leave that be.
      if (existing && existing.outerHTML === node.outerHTML) return;
      node.classList.add("arrived");
      if (existing) {
        existing.replaceWith(node);
      } else {
        container.insertBefore(node, container.firstElementChild);
      }
      if (empty) empty.hidden = true;
      // An attempt says what became of its delivery: the heading's badge follows.
      var statusClass = node.getAttribute("data-status-class");
      var badge = document.querySelector("[data-status-badge] .badge");
      if (statusClass && badge) {
        badge.className = "badge " + statusClass;
        badge.textContent = node.getAttribute("data-status-text");
      }
      fresh += 1;
      if (status) status.textContent = fresh + (fresh === 1 ? " update" : " updates") + " since the page loaded.";
    });
    // Close the stream when the page goes away (also into the back/forward cache): an
    // open stream holds one of the browser's few connections to this server.
    window.addEventListener("pagehide", function () { source.close(); });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) window.location.reload();
    });
    source.addEventListener("open", function () {
      element.setAttribute("data-live-state", "open");
    });
    source.addEventListener("error", function () {
      element.setAttribute("data-live-state", "reconnecting");
    });
  }

  function copyButton(button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () {});
      } else if (document.execCommand && document.execCommand("copy")) {
        done();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(liveTable);
    document.querySelectorAll("[data-copy]").forEach(copyButton);
  });
})();
