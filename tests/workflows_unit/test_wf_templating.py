"""Templating: only known variables are replaced; JSON and code braces stay as they are."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from flotilla.domain.templating import (
    StageFacts,
    TemplateContext,
    combine_facts,
    facts_from_result,
    next_steps_in,
    references,
    render,
    template_problems,
    template_references,
)

IMPL = StageFacts(
    summary="Added login.",
    files=("src/login.py", "tests/test_login.py"),
    diff_stat="2 files changed, 40 insertions(+), 2 deletions(-)",
    next_steps=("add logout", "document it"),
    status="succeeded",
    tests="tests passed (exit 0, 12 passed)",
    result={"outcome": "success", "summary": "Added login."},
)
CTX = TemplateContext(
    task_prompt="Add login",
    stages={"impl": IMPL},
    order=("impl", "review", "refine"),
)


def test_named_fields() -> None:
    out = render("{stages.impl.summary}|{stages.impl.files}|{stages.impl.status}", CTX)
    assert out == "Added login.|src/login.py\ntests/test_login.py|succeeded"
    assert render("{stages.impl.next_steps}", CTX) == "- add logout\n- document it"
    assert render("{stages.impl.diff_stat}", CTX) == IMPL.diff_stat
    assert render("{stages.impl.tests}", CTX) == IMPL.tests
    assert json.loads(render("{stages.impl.result}", CTX)) == IMPL.result


def test_positional_forms() -> None:
    template = "{stage_0_summary} {stage_0_files} {stage_0_next_steps} {stage_0_status}"
    assert render(template, CTX) == render(
        "{stages.impl.summary} {stages.impl.files} {stages.impl.next_steps} {stages.impl.status}",
        CTX,
    )
    assert json.loads(render("{stage_0_result}", CTX)) == IMPL.result


def test_task_prompt_and_worker_variables() -> None:
    ctx = TemplateContext("T", part="the tests", worker_index=2, worker_count=3)
    assert render("{task_prompt}: {part} ({worker_index}/{worker_count})", ctx) == (
        "T: the tests (2/3)"
    )


def test_json_and_code_in_a_prompt_stay_untouched() -> None:
    template = (
        'Reply as {"winner": "<name>", "why": {"tests": 1}} for {task_prompt}.\n'
        "function f() { return {a: 1}; }\n"
        "f'{name}' and ${HOME} and {{task_prompt}} and {} and { task_prompt }"
    )
    out = render(template, CTX)
    assert out == template.replace("{task_prompt}", "Add login")
    assert '{"winner": "<name>", "why": {"tests": 1}}' in out
    assert "{Add login}" in out  # doubled braces are no escape: the outer pair stays
    assert "{ task_prompt }" in out


def test_unknown_variable_is_left_literal_in_render_but_reported() -> None:
    template = "{task_promt} {stages.impl.summry} {stage_9_summary} {stages.gone.summary}"
    assert render(template, CTX) == template
    problems = template_problems(
        template, stage="refine", order=CTX.order, upstream=frozenset({"impl"}), has_parts=False
    )
    assert len(problems) == 4
    assert problems[0].startswith("stage 'refine' prompt uses unknown variable {task_promt}")


def test_a_stage_that_produced_nothing_renders_empty() -> None:
    assert render("[{stages.review.summary}]", CTX) == "[]"  # in the workflow, no facts
    assert render("[{stage_1_files}]", CTX) == "[]"


def test_values_are_not_rendered_again() -> None:
    ctx = TemplateContext("use {stages.impl.summary} literally", stages={"impl": IMPL})
    assert render("{task_prompt}", ctx) == "use {stages.impl.summary} literally"


def test_template_references() -> None:
    template = "{stages.impl.summary} {stage_1_status} {stages.x.bad} {stage_9_files}"
    assert template_references(template, CTX.order) == {"impl", "review"}
    assert template_references(template) == {"impl"}
    assert [r.kind for r in references("{task_prompt} {part} {stage} {other}")] == [
        "task",
        "worker",
        "unknown",
    ]


@given(st.text(alphabet=st.sampled_from('{}ab": ,[]_.\n'), max_size=60))
def test_text_without_known_variables_renders_unchanged(text: str) -> None:
    assert render(text, CTX) == text


def test_facts_from_result() -> None:
    result = {
        "outcome": "success",
        "summary": "Did it",
        "files": [{"path": "a.py", "status": "modified"}, {"path": "b.py", "status": "added"}],
        "insertions": 10,
        "deletions": 3,
        "tests": {"command": "pytest", "exit_code": 1, "passed": 4, "failed": 1},
        "next_steps": ["more"],
    }
    facts = facts_from_result(result, "succeeded")
    assert facts.files == ("a.py", "b.py")
    assert facts.diff_stat == "2 files changed, 10 insertions(+), 3 deletions(-)"
    assert facts.tests == "tests failed (exit 1, 4 passed, 1 failed): pytest"
    assert facts.status == "succeeded" and facts.next_steps == ("more",)
    assert facts_from_result({"outcome": "no_changes"}).diff_stat == "no changes"
    assert facts_from_result({}).tests == "no test command"
    assert facts_from_result({"outcome": "error"}).status == "error"


def test_combine_facts_labels_each_worker() -> None:
    other = StageFacts(summary="Docs.", files=("README.md", "src/login.py"), status="failed")
    combined = combine_facts([("w-A", IMPL), ("w-B", other)])
    assert combined.summary == "[w-A]\nAdded login.\n\n[w-B]\nDocs."
    assert combined.files == ("src/login.py", "tests/test_login.py", "README.md")
    assert combined.status == "w-A: succeeded, w-B: failed"
    assert combined.next_steps == ("w-A: add logout", "w-A: document it")
    assert set(combined.result["workers"]) == {"w-A", "w-B"}
    assert combine_facts([("w-A", IMPL)]) is IMPL


def test_next_steps_are_read_from_a_heading_when_the_agent_gave_none() -> None:
    summary = (
        "The parser misses empty input.\n\n## Next steps\n\n- handle ''\n2. add a test\n\nThanks."
    )
    facts = facts_from_result({"summary": summary, "outcome": "success"})
    assert facts.next_steps == ("handle ''", "add a test")
    given = facts_from_result({"summary": summary, "next_steps": ["theirs"]})
    assert given.next_steps == ("theirs",)  # the agent's own list wins


def test_prose_after_a_next_steps_line_is_not_a_list() -> None:
    assert next_steps_in("Next steps are up to you.\nI think\n- this is not one") == ()
    assert next_steps_in("no heading\n- a\n- b") == ()


def test_diff_stat_counts_in_words() -> None:
    one = facts_from_result({"files": ["a.py"], "insertions": 1, "deletions": 0})
    assert one.diff_stat == "1 file changed, 1 insertion(+), 0 deletions(-)"
    two = facts_from_result({"files": ["a.py", "b.py"], "insertions": 3, "deletions": 2})
    assert two.diff_stat == "2 files changed, 3 insertions(+), 2 deletions(-)"
