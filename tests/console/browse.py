"""Browses the console's executions with one tenant's key, then with another's.

Usage: browse.py <host url> <key of the owner> <key of another tenant> <execution id>
                 <id of an execution whose step was retried>

With the owner's key: the executions page lists the execution; a filter on its status keeps
it, one on another status or on a creation time long past drops it; its page shows the timeline of its operations; the events
page lists its events. With the other tenant's key: no execution, its page is not found, no
event of it. Prints JSON for the Rust test (tests/e2e/console.rs), with the executions page's
weight (cold cache)."""

import sys

from browser import Weight, browser, done, enter_key, new_page, shot


def owner(b, base, key, execution, retried):
    context, page, errors = new_page(b)
    weight = Weight(page)
    page.goto(f"{base}/ui/")
    enter_key(page, key)
    page.wait_for_selector("#executions")
    page.wait_for_load_state("networkidle")
    list_weight = weight.report()
    shot(page, "executions")
    listed = page.locator("#executions tbody td:first-child").all_inner_texts()
    # Filters go through the list API.
    page.select_option("select[name=status]", "SUCCEEDED")
    page.click("form.filters button")
    page.wait_for_url("**/ui/executions?status=SUCCEEDED")
    page.wait_for_selector("#executions")
    succeeded = page.locator("#executions tbody td:first-child").all_inner_texts()
    page.select_option("select[name=status]", "FAILED")
    page.click("form.filters button")
    page.wait_for_url("**/ui/executions?status=FAILED")
    page.wait_for_selector("#no-executions")
    # And the creation times: nothing was created before 2000.
    page.select_option("select[name=status]", "")
    page.fill("input[name=created_before]", "2000-01-01T00:00")
    page.click("form.filters button")
    page.wait_for_url("**/ui/executions?created_before=*")
    page.wait_for_selector("#no-executions")
    # One execution: its timeline.
    page.goto(f"{base}/ui/executions?workflow=demo")
    page.click(f"text={execution}")
    page.wait_for_selector("#timeline .op")
    ops = page.locator("#timeline .op .head strong").all_inner_texts()
    status = page.inner_text("#execution-status")
    # The operations' inputs and outputs are a click away.
    page.locator("#timeline .op details summary").first.click()
    first_op_events = page.locator("#timeline .op details").first.inner_text()
    shot(page, "execution")
    execution_text = page.inner_text("main")
    # A step retried: its attempts, and each failure with the delay before the next.
    page.goto(f"{base}/ui/executions/{retried}")
    page.wait_for_selector("#timeline .op")
    retried_head = page.inner_text("#timeline .op .head")
    page.locator("#timeline .op details summary").first.click()
    retried_events = page.locator("#timeline .op details").first.inner_text()
    # The events page.
    page.click("nav >> text=Events")
    page.wait_for_selector("table.events")
    events_text = page.inner_text("table.events")
    shot(page, "events")
    context.close()
    return {
        "listed": listed,
        "succeeded": succeeded,
        "operations": ops,
        "status": status,
        "first_op_events": first_op_events,
        # What a value put on the page wrongly shows instead of itself.
        "stray_text": [t for t in ("[object ", "undefined", "NaN") if t in execution_text],
        "events_mention_execution": execution in events_text,
        "retried_head": retried_head,
        "retried_events": retried_events,
        "page_errors": errors,
        "weight": list_weight,
    }


def other(b, base, key, execution):
    context, page, errors = new_page(b)
    page.goto(f"{base}/ui/executions")
    enter_key(page, key)
    page.wait_for_selector("#no-executions")
    page.goto(f"{base}/ui/executions/{execution}")
    page.wait_for_selector("main .error")
    error = page.inner_text("main .error")
    shot(page, "other-tenant")
    page.goto(f"{base}/ui/events")
    page.wait_for_selector("main h1")
    events_text = page.inner_text("main")
    context.close()
    return {
        "no_executions": True,
        "execution_error": error,
        "events_mention_execution": execution in events_text,
        "page_errors": errors,
    }


def main(base, key, other_key, execution, retried):
    with browser() as b:
        done({"owner": owner(b, base, key, execution, retried),
              "other": other(b, base, other_key, execution)})


if __name__ == "__main__":
    main(*sys.argv[1:6])
