/* Whistle: small, optional enhancements. Every page works the same without this
   file (Tor Browser's safest setting runs no script at all). Nothing here sends
   anything anywhere, stores anything, or reads anything but the page itself. */
(function () {
  "use strict";

  var doc = document;

  function make(tag, attributes, text) {
    var node = doc.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) node.textContent = text;
    return node;
  }

  function all(selector, root) {
    return Array.prototype.slice.call((root || doc).querySelectorAll(selector));
  }

  /* An error summary (or the immediate-risk notice) takes focus when the page
     loads, so it is read out first; its links move to the field and bring its
     label or question into view, not just the input. */
  function errorSummary() {
    var first = doc.querySelector("[data-focus-on-load]");
    if (first) first.focus();
    all(".error-summary").forEach(summaryLinks);
  }

  function summaryLinks(summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var input = link && doc.getElementById(link.getAttribute("href").slice(1));
      if (!input) return;
      event.preventDefault();
      var fieldset = input.closest("fieldset");
      var label = fieldset ? fieldset.querySelector("legend") : doc.querySelector("label[for='" + input.id + "']");
      (label || input).scrollIntoView();
      input.focus({ preventScroll: true });
    });
  }

  /* A step is checked when it is left, as the server would check it on Send: each
     required question answered (a field marked data-required carries the server's
     own words), and no text over its limit. Errors show as the server shows them:
     a summary at the top of the step, linked to each field, and a message by each. */
  function stepErrors(section) {
    all("[data-step-error]", section).forEach(function (node) { node.remove(); });
    all(".field--checked", section).forEach(function (field) {
      field.classList.remove("field--error", "field--checked");
      all("[aria-invalid]", field).forEach(function (input) { input.removeAttribute("aria-invalid"); });
    });
    var problems = [];
    all(".field[data-required]", section).forEach(function (field) {
      var choices = all("input[type=radio], input[type=checkbox]", field);
      var inputs = choices.length ? choices : all("input, textarea, select", field);
      var answered = choices.length
        ? choices.some(function (input) { return input.checked; })
        : inputs.some(function (input) { return input.value.trim() !== ""; });
      if (!answered && inputs.length) problems.push({ field: field, target: inputs[0], text: field.getAttribute("data-required") });
    });
    all("[data-char-limit]", section).forEach(function (info) {
      var input = doc.getElementById(info.getAttribute("data-for"));
      var limit = parseInt(info.getAttribute("data-char-limit"), 10);
      var used = input ? Array.from(input.value).length + (input.value.match(/\n/g) || []).length : 0;
      if (input && used > limit) {
        problems.push({ field: input.closest(".field"), target: input, text: "Please keep this under " + limit.toLocaleString("en-GB") + " characters." });
      }
    });
    problems.forEach(function (problem) {
      var id = (problem.target.closest("fieldset") || problem.target).id || problem.target.id;
      var message = make("p", { "class": "field-error", "id": id + "-step-error", "data-step-error": "" });
      message.appendChild(make("span", { "class": "visually-hidden" }, "Error:"));
      message.appendChild(doc.createTextNode(" " + problem.text));
      var anchor = problem.field.querySelector("legend") || problem.field.querySelector("label");
      anchor.parentNode.insertBefore(message, anchor.nextSibling);
      problem.field.classList.add("field--error", "field--checked");
      problem.target.setAttribute("aria-invalid", "true");
      problem.link = problem.target.id;
    });
    if (!problems.length) return true;
    var summary = make("div", { "class": "error-summary", "role": "alert", "tabindex": "-1", "data-step-error": "" });
    summary.appendChild(make("h2", {}, "There is a problem"));
    var list = make("ul");
    problems.forEach(function (problem) {
      var item = make("li");
      item.appendChild(make("a", { "href": "#" + problem.link }, problem.text));
      list.appendChild(item);
    });
    summary.appendChild(list);
    var heading = section.querySelector(".step-title");
    heading.parentNode.insertBefore(summary, heading.nextSibling);
    summaryLinks(summary);
    summary.focus();
    return false;
  }

  /* Character counts, in the manner of GOV.UK's: the browser's own maxlength
     would silently cut a long paste short, so it goes, and the count says how
     much room is left (or how much too much there is). The visible count is
     hidden from screen readers; a polite live region repeats it once typing
     pauses. Line breaks count twice, as the browser sends them as two. */
  function characterCounts() {
    all("[data-char-limit]").forEach(function (info) {
      var field = doc.getElementById(info.getAttribute("data-for"));
      var limit = parseInt(info.getAttribute("data-char-limit"), 10);
      if (!field || !limit) return;
      field.removeAttribute("maxlength");
      info.classList.add("visually-hidden");
      var shown = make("p", { "class": "char-count", "aria-hidden": "true" });
      var spoken = make("p", { "class": "visually-hidden", "aria-live": "polite" });
      info.parentNode.insertBefore(shown, info.nextSibling);
      info.parentNode.insertBefore(spoken, shown.nextSibling);
      var timer = null;
      function message() {
        var value = field.value;
        var used = Array.from(value).length + (value.match(/\n/g) || []).length;
        var left = limit - used;
        var words = left >= 0
          ? "You have " + left.toLocaleString("en-GB") + " character" + (left === 1 ? "" : "s") + " remaining"
          : "You have " + (-left).toLocaleString("en-GB") + " character" + (left === -1 ? "" : "s") + " too many";
        return { text: words, over: left < 0 };
      }
      function update(announce) {
        var now = message();
        shown.textContent = now.text;
        shown.classList.toggle("char-count--over", now.over);
        clearTimeout(timer);
        if (announce) {
          timer = setTimeout(function () { spoken.textContent = now.text; }, 1000);
        }
      }
      field.addEventListener("input", function () { update(true); });
      update(false);
    });
  }

  /* A form marked data-keep-typed asks before the page is left with typed
     answers in it (the browser's own "Leave site?" question), so a slip of the
     back button does not lose a report that took a while to write. */
  function keepTyped() {
    all("form[data-keep-typed]").forEach(function (form) {
      var typed = false;
      var sending = false;
      form.addEventListener("input", function () { typed = true; });
      form.addEventListener("change", function () { typed = true; });
      form.addEventListener("submit", function () { sending = true; });
      window.addEventListener("beforeunload", function (event) {
        if (typed && !sending) {
          event.preventDefault();
          event.returnValue = "";
        }
      });
    });
  }

  /* The report form, one step at a time. Every step stays in the one form, so
     going back (with the Back button or the browser's) keeps every answer, and
     nothing is sent before the last step. */
  function steps() {
    var form = doc.querySelector("form[data-steps]");
    if (!form) return;
    var sections = all("[data-step]", form);
    if (sections.length < 2) return;
    var baseTitle = doc.title;
    var current = 0;

    function show(index, move) {
      current = index;
      sections.forEach(function (section, i) {
        section.hidden = i !== index;
      });
      var heading = sections[index].querySelector(".step-title");
      var number = heading.querySelector(".step-number");
      var name = heading.textContent.replace(number ? number.textContent : "", "").replace(/\s+/g, " ").trim();
      doc.title = (number ? number.textContent.trim() + ": " : "") + name + " – " + baseTitle;
      if (move) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({ preventScroll: true });
        heading.scrollIntoView();
      }
    }

    function leave(index) {
      if (stepErrors(sections[index])) go(index + 1);
    }

    function go(index) {
      history.pushState({ whistleStep: index }, "", "#step-" + (index + 1));
      show(index, true);
    }

    sections.forEach(function (section, index) {
      var actions = section.querySelector(".form-actions");
      if (!actions) {
        actions = make("div", { "class": "form-actions" });
        section.appendChild(actions);
      }
      actions.classList.add("step-nav");
      if (index < sections.length - 1) {
        var next = make("button", { "type": "button", "class": "button" }, "Continue");
        next.addEventListener("click", function () { leave(index); });
        actions.appendChild(next);
      }
      if (index > 0) {
        var back = make("button", { "type": "button", "class": "button button--secondary" }, "Back");
        back.addEventListener("click", function () {
          if (history.state && history.state.whistleStep === index) {
            history.back();
          } else {
            history.replaceState({ whistleStep: index - 1 }, "", "#step-" + index);
            show(index - 1, true);
          }
        });
        actions.appendChild(back);
      }
    });

    /* Enter in a field of an early step moves on instead of sending the form. */
    form.addEventListener("submit", function (event) {
      if (current < sections.length - 1) {
        event.preventDefault();
        event.stopImmediatePropagation();
        leave(current);
      }
    }, true);

    window.addEventListener("popstate", function (event) {
      var index = event.state && typeof event.state.whistleStep === "number" ? event.state.whistleStep : 0;
      show(Math.max(0, Math.min(index, sections.length - 1)), true);
    });

    form.classList.add("steps--one-at-a-time");
    history.replaceState({ whistleStep: 0 }, "", location.pathname + location.search);
    show(0, false);
  }

  /* The receipt page: copy the code, or print the page. */
  function receiptActions() {
    all("[data-receipt-actions]").forEach(function (box) {
      var code = doc.querySelector(".receipt strong");
      if (!code) return;
      var what = box.getAttribute("data-what") || "receipt code";
      var status = make("p", { "class": "receipt-status", "role": "status" });
      var copy = make("button", { "type": "button", "class": "button button--secondary" }, "Copy " + what);
      var print = make("button", { "type": "button", "class": "button button--secondary" }, "Print this page");
      copy.addEventListener("click", function () {
        var text = code.textContent.trim();
        var done = function () {
          status.textContent = "Copied. Paste it somewhere only you can reach.";
        };
        var failed = function () {
          var range = doc.createRange();
          range.selectNodeContents(code);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          status.textContent = "Your browser did not allow copying. The code is selected: copy it yourself, or write it down.";
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, failed);
        } else {
          failed();
        }
      });
      print.addEventListener("click", function () { window.print(); });
      box.appendChild(copy);
      box.appendChild(print);
      box.appendChild(status);
    });
  }

  function start() {
    steps();
    characterCounts();
    keepTyped();
    receiptActions();
    errorSummary();
  }

  if (doc.readyState === "loading") {
    doc.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
