"""Opens a research pipeline run's approval link cold (a browser with no key), gives the key the
console asks for, reads the analysis rendered as a page, writes a comment and approves.

Usage: approve.py <approval url> <api key> <comment>

Prints JSON: what the page showed (`headings`, `raw_json_shown`), the runs the pending
approvals page listed (`pending`) and where it led (`back_to`), the `decision` text, and the
page's weight before any of that (`weight`). The Rust test (tests/e2e/console.rs) checks it
and that the run completes with the comment."""

import sys

from browser import Weight, browser, done, enter_key, new_page, shot


def main(url, key, comment):
    with browser() as b:
        context, page, errors = new_page(b)
        weight = Weight(page)
        page.goto(url)
        enter_key(page, key)
        # The same approval, once the key is given.
        page.wait_for_selector("#analysis h2")
        assert page.url == url, f"the console left the approval page for {page.url}"
        headings = page.locator("#analysis h2").all_inner_texts()
        analysis_text = page.inner_text("#analysis")
        status = page.inner_text("#run-status")
        page.wait_for_load_state("networkidle")
        loaded = weight.report()
        shot(page, "approval")
        # The run is among the pending approvals, which lead back to its page.
        page.click("nav >> text=Approvals")
        page.wait_for_selector("#approvals")
        pending = page.locator("#approvals tbody td:nth-child(2)").all_inner_texts()
        page.click("#approvals tbody a")
        page.wait_for_selector("#analysis h2")
        back = page.url
        page.fill("#comment", comment)
        page.click("#approve")
        decision = page.inner_text("#decision-result")
        shot(page, "approved")
        context.close()
    done({
        "headings": headings,
        "status": status,
        "raw_json_shown": analysis_text.lstrip().startswith("{"),
        "analysis_chars": len(analysis_text),
        "decision": decision,
        "pending": pending,
        "back_to": back,
        "page_errors": errors,
        "weight": loaded,
    })


if __name__ == "__main__":
    main(*sys.argv[1:4])
