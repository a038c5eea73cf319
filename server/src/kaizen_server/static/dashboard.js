// Kaizen CT dashboard: theme switch, confirmations and keyboard shortcuts.
// Every page works without this file; it only adds shortcuts and the theme button.
(function () {
  "use strict";

  var THEME_COOKIE = "kaizen_theme";
  var root = document.documentElement;

  function currentTheme() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function setupThemeToggle() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      document.cookie = THEME_COOKIE + "=" + next + "; path=/; max-age=31536000; SameSite=Lax";
    });
  }

  function setupConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function setupQuickScores() {
    var input = document.getElementById("score-input");
    if (!input) return;
    document.querySelectorAll("[data-score]").forEach(function (button) {
      button.addEventListener("click", function () {
        input.value = button.getAttribute("data-score");
        input.focus();
      });
    });
  }

  var QUICK_SCORES = { "1": "0", "2": "0.25", "3": "0.5", "4": "0.75", "5": "1" };
  var pendingG = false;

  function isTyping(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var help = document.getElementById("shortcuts");
    if (event.key === "Escape") {
      if (help) help.hidden = true;
      if (isTyping(event.target)) event.target.blur();
      return;
    }

    var form = document.getElementById("score-form");
    var input = document.getElementById("score-input");
    // Enter in the score field submits the form natively; no extra handling is needed there.
    if (isTyping(event.target)) return;

    if (event.key === "?") {
      if (help) help.hidden = !help.hidden;
      return;
    }
    if (pendingG) {
      pendingG = false;
      if (event.key === "t") window.location.href = "/";
      return;
    }
    if (event.key === "g") {
      pendingG = true;
      return;
    }
    if (event.key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) {
        event.preventDefault();
        search.focus();
      }
      return;
    }
    if (!form || !input) return;

    if (Object.prototype.hasOwnProperty.call(QUICK_SCORES, event.key)) {
      input.value = QUICK_SCORES[event.key];
      return;
    }
    if (event.key === "Enter" && input.value !== "") {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.submit();
      return;
    }
    if (event.key === "r") {
      var review = form.querySelector("input[name=review]");
      if (review) review.checked = !review.checked;
      return;
    }
    if (event.key === "n") {
      var next = document.getElementById("next-unscored");
      if (next) window.location.href = next.getAttribute("href");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupThemeToggle();
    setupConfirmations();
    setupQuickScores();
    document.addEventListener("keydown", onKey);
  });
})();
