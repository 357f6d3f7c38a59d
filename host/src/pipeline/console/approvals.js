// The research pipeline's pages in the Aegis console: the runs awaiting a decision, and one
// run's approval page, where a reviewer reads the analysis and approves or rejects it. The
// decision goes through the pipeline's own route, `POST /workflows/{id}/approval`.
//
// The analysis arrives rendered by the host (`GET /workflows/{id}/review`, `analysis_html`):
// agent output escaped there, and its raw HTML shown as text. It is the one piece of markup
// this page inserts; everything else is text.
"use strict";

(() => {
  const { api, h, put, link, status, time, query } = Aegis;
  const PIPELINE = "research-pipeline";

  /** The runs waiting for a decision, newest first. */
  async function list(el) {
    const running = await api(`/v1/executions${query({ workflow: PIPELINE, status: "RUNNING", limit: 200 })}`);
    const views = await Promise.all(running.executions.map((x) =>
      api(`/workflows/${encodeURIComponent(x.execution_id)}`)));
    const waiting = views.filter((v) => v.status === "AWAITING_APPROVAL");
    put(el, h("h1", {}, "Pending approvals"),
      waiting.length
        ? h("table", { id: "approvals" },
          h("thead", {}, h("tr", {}, ["Topic", "Run", "Waiting since"].map((t) => h("th", {}, t)))),
          h("tbody", {}, waiting.map((v) => h("tr", {},
            h("td", {}, link(`/ui/approvals/${encodeURIComponent(v.workflow_id)}`, String(v.topic))),
            h("td", {}, h("code", {}, v.workflow_id)),
            h("td", {}, time(v.updated_at))))))
        : h("p", { class: "muted", id: "no-approvals" }, "No run is waiting for a decision."));
  }

  /** One run's approval page. */
  async function review(el, id) {
    const r = await api(`/workflows/${encodeURIComponent(id)}/review`);
    const run = r.run;
    const analysis = h("article", { class: "analysis", id: "analysis" });
    if (r.analysis_html === null) analysis.append(h("p", { class: "muted" }, "No analysis yet."));
    else analysis.innerHTML = r.analysis_html; // rendered and escaped by the host
    put(el, h("h1", {}, `Review: ${run.topic}`),
      h("dl", { class: "fields" },
        h("dt", {}, "Status"), h("dd", { id: "run-status" }, status(run.status)),
        h("dt", {}, "Run"), h("dd", {}, link(`/ui/executions/${encodeURIComponent(run.workflow_id)}`, run.workflow_id)),
        h("dt", {}, "Steps done"), h("dd", {}, run.steps_completed.map((s) => s.step).join(", ")),
        run.review_url ? [h("dt", {}, "Raw analysis"), h("dd", {}, h("a", { href: run.review_url }, "analysis.json"))] : null),
      h("h2", {}, "Analysis"), analysis);
    if (!r.awaiting_decision) {
      put(el, h("p", { class: "notice", id: "no-decision" },
        `This run is not waiting for a decision (status ${run.status}).`));
      return;
    }
    const comment = h("textarea", { id: "comment", name: "comment", placeholder: "What the writer should know" });
    const outcome = h("div", {});
    const decide = async (decision) => {
      for (const b of buttons.querySelectorAll("button")) b.disabled = true;
      try {
        await api(`/workflows/${encodeURIComponent(id)}/approval`,
          { method: "POST", body: { decision, comment: comment.value } });
        form.replaceWith(h("p", { class: "notice", id: "decision-result" },
          decision === "approve" ? "Approved: the run goes on to the writer." : "Rejected: the run ends."));
      } catch (e) {
        outcome.replaceChildren(h("p", { class: "error" }, e.message));
        for (const b of buttons.querySelectorAll("button")) b.disabled = false;
      }
    };
    const buttons = h("div", { class: "buttons" },
      h("button", { type: "button", id: "approve", onclick: () => decide("approve") }, "Approve"),
      h("button", { type: "button", id: "reject", class: "reject", onclick: () => decide("reject") }, "Reject"));
    const form = h("form", { class: "decide", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Comment", comment), buttons, outcome);
    put(el, h("h2", {}, "Decision"), form);
  }

  Aegis.page({
    name: "approvals",
    title: "Approvals",
    nav: true,
    render: (el, rest) => (rest[0] ? review(el, rest[0]) : list(el)),
  });
})();
