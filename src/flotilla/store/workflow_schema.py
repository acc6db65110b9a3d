"""The workflow tables as SQLAlchemy Core objects, on the store's one `metadata`.

A workflow row holds its definition (the spec, as JSON) and its totals; a stage
row its state, attempt and the facts it hands downstream; a stage-worker row
one planned worker of one attempt of a stage, written *before* the worker is
created so that a restarted daemon adopts the worker by name instead of making
a second one. Migration r0002 builds the same tables; the drift test compares.
"""

from __future__ import annotations

import sqlalchemy as sa

from flotilla.store.schema import metadata

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("project", sa.Text(), nullable=False),
    sa.Column("spec", sa.Text(), nullable=False),  # JSON of the WorkflowSpec
    sa.Column("task_prompt", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("options", sa.Text(), nullable=False),  # JSON: merge, into, base commit...
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("started_at", sa.Double(), nullable=True),
    sa.Column("ended_at", sa.Double(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cost_usd", sa.Double(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("ranking", sa.Text(), nullable=True),  # JSON: stage -> ranking table
    sa.Column("winner", sa.String(64), nullable=True),
    sa.Column("merged", sa.Text(), nullable=True),  # JSON: what --merge brought back
    sa.Index("ix_workflows_project", "project"),
    sa.Index("ix_workflows_state", "state"),
)

workflow_stages = sa.Table(
    "workflow_stages",
    metadata,
    sa.Column(
        "workflow_id",
        sa.String(64),
        sa.ForeignKey("workflows.id", ondelete="CASCADE", name="fk_workflow_stages_workflow"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("retry_base", sa.Integer(), nullable=False),  # attempt when last started
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("started_at", sa.Double(), nullable=True),
    sa.Column("ended_at", sa.Double(), nullable=True),
    sa.Column("facts", sa.Text(), nullable=True),  # JSON of StageFacts
    sa.Column("ranking", sa.Text(), nullable=True),  # JSON: rank stages
    sa.Column("winner", sa.String(64), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cost_usd", sa.Double(), nullable=False),
)

workflow_stage_workers = sa.Table(
    "workflow_stage_workers",
    metadata,
    sa.Column("workflow_id", sa.String(64), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("attempt", sa.Integer(), primary_key=True),
    sa.Column("idx", sa.Integer(), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # candidate or judge
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("part", sa.Text(), nullable=True),
    sa.Column("worker_id", sa.String(64), nullable=True),  # set once the worker exists
    sa.Column("created_at", sa.Double(), nullable=False),
    # What the worker ended with, kept here because its own row may be removed later.
    sa.Column("state", sa.String(16), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cost_usd", sa.Double(), nullable=False),
    sa.Column("result", sa.Text(), nullable=True),  # JSON of the worker's result
    sa.ForeignKeyConstraint(
        ["workflow_id", "stage"],
        ["workflow_stages.workflow_id", "workflow_stages.name"],
        ondelete="CASCADE",
        name="fk_workflow_stage_workers_stage",
    ),
    sa.Index("ix_workflow_stage_workers_worker", "worker_id"),
)
