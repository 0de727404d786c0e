"""Department list and 代缴 batch API (role department: its own lists and batch only; role
finance: late-list approvals and batch approvals). Thin: arguments → one service call →
commit → response."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request

from api import clock
from api.db import get_session
from api.departments import batches, effects, lists
from api.departments.schemas import (
    ApplyResultSchema,
    BatchListQuerySchema,
    BatchListSchema,
    BatchQuerySchema,
    BatchSchema,
    DraftSchema,
    SubmitSchema,
    UploadFormSchema,
    UploadListQuerySchema,
    UploadListSchema,
    UploadQuerySchema,
    UploadSchema,
)
from api.errors import DomainError, InvalidInput
from api.extensions.smorest import Blueprint, ErrorSchema

MAX_FILE_BYTES = 20 * 1024 * 1024

blp = Blueprint(
    "departments",
    __name__,
    url_prefix="/api/v1/departments",
    description="部门名单与代缴批次（民政、残联、扶贫办、卫健、公安；财政审批）",
)


def _actor() -> str:
    return f"staff:{g.staff.username}"


def _own_department() -> str | None:
    """A department account's code; None for finance (sees every department)."""
    if g.staff.role == "department":
        return lists.department_of(g.staff.department)
    return None


def _apply_answer(result: lists.ApplyResult, closed: dict[str, int]) -> dict[str, Any]:
    upload = result.upload
    if not result.changed:
        message = "该名单已处理过，本次未作任何改变"
    elif upload.status == "awaiting_approval":
        message = "已过部门名单报送截止日期，须经区财政审批后生效"
    else:
        message = "名单已生效"
    return {
        "upload_id": upload.id,
        "status": upload.status,
        "changed": result.changed,
        "added": result.added,
        "removed": result.removed,
        "events": result.events,
        "orders_closed": closed,
        "refunds": result.refunds,
        "message": message,
    }


def _finish(result: lists.ApplyResult) -> dict[str, Any]:
    session = get_session()
    session.commit()
    closed = effects.close_after_commit(
        current_app.extensions["database"],
        current_app.config["SETTINGS"],
        order_ids=result.close_order_ids,
        actor=_actor(),
    )
    return _apply_answer(result, closed)


@blp.route("/uploads", methods=["POST"])
@blp.login_required(kind="staff", roles=("department",))
@blp.arguments(UploadFormSchema, location="form", content_type="multipart/form-data")
@blp.response(201, UploadSchema)
@blp.alt_response(403, schema=ErrorSchema, description="foreign_category / no_department")
@blp.alt_response(413, schema=ErrorSchema, description="payload_too_large")
@blp.alt_response(422, schema=ErrorSchema, description="bad_header / unsupported_format / …")
def upload(form: dict[str, Any]) -> dict[str, Any]:
    """上传部门名单（预览）

    CSV（UTF-8）或 XLSX，表头：身份证号、姓名、类别（或事件）、生效日期、文号。只生成预览
    （新增、移出、未变、名册中无此人、姓名不符、身份证号错误……，每行带文件行号），
    保存在服务器上；确认（apply）后才生效。只能上报本部门的类别。
    """
    storage = request.files.get("file")
    if storage is None:
        raise InvalidInput(
            "请选择要上传的名单文件", code="file_required", errors={"files": {"file": ["必填字段"]}}
        )
    data = storage.stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DomainError("名单文件过大（最多 20 MB）", code="payload_too_large", status=413)
    keys = [k.strip() for k in form["categories"].split(",") if k.strip()]
    session = get_session()
    row = lists.upload_list(
        session,
        department=lists.department_of(g.staff.department),
        year=form["year"],
        file_name=storage.filename or "list.csv",
        data=data,
        actor=_actor(),
        keys=keys,
    )
    session.commit()
    return lists.upload_view(session, row)


@blp.route("/uploads", methods=["GET"])
@blp.login_required(kind="staff", roles=("department", "finance"))
@blp.arguments(UploadListQuerySchema, location="query")
@blp.response(200, UploadListSchema)
def list_uploads(query: dict[str, Any]) -> dict[str, Any]:
    """名单上传记录（部门：本部门；财政：全部，可按状态筛选，如 awaiting_approval），
    最新 200 条。"""
    rows = lists.list_uploads(get_session(), department=_own_department(), status=query["status"])
    return {"uploads": rows}


@blp.route("/uploads/<int:upload_id>", methods=["GET"])
@blp.login_required(kind="staff", roles=("department", "finance"))
@blp.arguments(UploadQuerySchema, location="query")
@blp.response(200, UploadSchema)
def get_preview(query: dict[str, Any], upload_id: int) -> dict[str, Any]:
    """名单预览（每类最多列 500 行，其余计数；可按 kind 筛选）。身份证号、姓名均脱敏。"""
    session = get_session()
    row = lists.get_upload(session, upload_id=upload_id, department=_own_department())
    return lists.upload_view(session, row, kind=query["kind"])


@blp.route("/uploads/<int:upload_id>/apply", methods=["POST"])
@blp.login_required(kind="staff", roles=("department",))
@blp.response(200, ApplyResultSchema)
@blp.alt_response(422, schema=ErrorSchema, description="preview_has_errors")
def apply(upload_id: int) -> dict[str, Any]:
    """确认名单：替换本部门这些类别的上一份名单，并处理每项变化（关闭未付订单、死亡退费……）。
    截止日期（11-26）后确认的名单须经区财政审批后生效。重复确认不会再作任何改变。"""
    result = lists.apply_upload(
        get_session(),
        upload_id=upload_id,
        department=lists.department_of(g.staff.department),
        actor=_actor(),
        today=clock.today(),
    )
    return _finish(result)


@blp.route("/uploads/<int:upload_id>/approve", methods=["POST"])
@blp.login_required(kind="staff", roles=("finance",))
@blp.response(200, ApplyResultSchema)
@blp.alt_response(
    409, schema=ErrorSchema, description="upload_not_awaiting_approval / self_approval"
)
def approve_upload(upload_id: int) -> dict[str, Any]:
    """区财政审批逾期名单（审批人不能是上传人），审批后名单生效。"""
    result = lists.approve_upload(get_session(), upload_id=upload_id, actor=_actor())
    return _finish(result)


@blp.route("/batch", methods=["GET"])
@blp.login_required(kind="staff", roles=("department",))
@blp.arguments(BatchQuerySchema, location="query")
@blp.response(200, DraftSchema)
def get_batch_draft(query: dict[str, Any]) -> dict[str, Any]:
    """本部门待提交的代缴批次：代缴人员及金额、个人已缴需退付个人的人员、须冲销的代缴，及已提交的批次。"""
    return batches.draft_view(
        get_session(),
        department=lists.department_of(g.staff.department),
        year=query["year"],
        on=clock.today(),
    )


@blp.route("/batch/submit", methods=["POST"])
@blp.login_required(kind="staff", roles=("department",))
@blp.arguments(SubmitSchema)
@blp.response(201, BatchSchema)
@blp.alt_response(409, schema=ErrorSchema, description="batch_empty / batch_line_taken")
def submit_batch(body: dict[str, Any]) -> dict[str, Any]:
    """提交本部门代缴批次（提交后由区财政审批入账）。"""
    session = get_session()
    batch = batches.submit(
        session,
        department=lists.department_of(g.staff.department),
        year=body["year"],
        on=clock.today(),
        actor=_actor(),
    )
    session.commit()
    return batches.batch_view(session, batch)


@blp.route("/batches", methods=["GET"])
@blp.login_required(kind="staff", roles=("finance",))
@blp.arguments(BatchListQuerySchema, location="query")
@blp.response(200, BatchListSchema)
def list_batches(query: dict[str, Any]) -> dict[str, Any]:
    """全部部门的代缴批次（财政），可按状态筛选，最新 200 条。"""
    rows = batches.list_batches(get_session(), status=query["status"])
    return {"batches": [batches.batch_summary(b) for b in rows]}


@blp.route("/batches/<int:batch_id>", methods=["GET"])
@blp.login_required(kind="staff", roles=("department", "finance"))
@blp.response(200, BatchSchema)
def get_batch(batch_id: int) -> dict[str, Any]:
    """一个代缴批次及其明细（部门只能看本部门的批次）。"""
    session = get_session()
    batch = batches.get_batch(session, batch_id=batch_id, department=_own_department())
    return batches.batch_view(session, batch)


@blp.route("/batches/<int:batch_id>/approve", methods=["POST"])
@blp.login_required(kind="staff", roles=("finance",))
@blp.response(200, BatchSchema)
@blp.alt_response(409, schema=ErrorSchema, description="self_approval")
def approve_batch(batch_id: int) -> dict[str, Any]:
    """区财政审批代缴批次（审批人不能是提交人）：代缴入账（source=government，记录代缴部门）
    并进入税务对账队列；冲销行生成冲销记录。重复审批不会重复入账。"""
    session = get_session()
    batch = batches.approve(session, batch_id=batch_id, actor=_actor(), on=clock.today())
    session.commit()
    return batches.batch_view(session, batch)
