"""What every resource shares: the base models, problem documents, pages, and the turning
of a pydantic ValidationError into the API's `{"field", "message"}` list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from notifier.errors import ValidationFailed

# The error type of a validator that found several problems at once, each with its own field
# (the template checks report `templates.sms.ko.text` and the like).
PROBLEMS = "problems"


@dataclass(frozen=True, slots=True)
class Hint:
    """In a field's Annotated metadata: the message every problem of that field is reported
    with, in place of the validator's own (which names types rather than what to send)."""

    message: str


def problems_error(problems: list[dict[str, str]]) -> PydanticCustomError:
    """One validation error that carries several `{"field", "message"}` problems."""
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return PydanticCustomError(PROBLEMS, "{summary}", {"summary": summary, "problems": problems})


class Body(BaseModel):
    """A request body: unknown fields are refused, every problem is reported at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The problem's detail when the body is not valid.
    invalid: ClassVar[str] = "the body is not valid"


class View(BaseModel):
    """A response body, built from what the services return."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class FieldError(View):
    """One problem with a field of the body."""

    field: str = Field(description="the field's dotted path, e.g. templates.sms.ko.text")
    message: str


class LineError(View):
    """One problem with a line of an uploaded file."""

    line: int
    message: str


class Problem(View):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError | LineError] | None = Field(
        default=None, description="every problem with the input, when it was invalid"
    )


ItemT = TypeVar("ItemT")


class Page(View, Generic[ItemT]):
    """One page of a keyset-paginated list."""

    items: list[ItemT]
    next: str | None = Field(description="the cursor of the next page (`?after=`), or null")


ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(
    model: type[ModelT], data: object, *, context: Mapping[str, Any] | None = None
) -> ModelT:
    """`data` as a `model`, or ValidationFailed naming every problem by field."""
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object")
    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        detail = getattr(model, "invalid", "the body is not valid")
        raise ValidationFailed(detail, errors=field_errors(exc, model)) from None


def field_errors(exc: ValidationError, model: type[BaseModel]) -> list[dict[str, Any]]:
    """The API's list of problems, in field order, each reported once."""
    found: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False):
        for problem in _problems(error, model):
            if problem not in found:
                found.append(problem)
    return found


def _problems(error: ErrorDetails, model: type[BaseModel]) -> list[dict[str, Any]]:
    loc = error["loc"]
    if error["type"] == PROBLEMS:
        return list(error.get("ctx", {})["problems"])
    if error["type"] == "extra_forbidden":
        return [{"field": dotted(loc), "message": "unknown field"}]
    top = model.model_fields.get(str(loc[0])) if loc else None
    hint = next((m for m in top.metadata if isinstance(m, Hint)), None) if top else None
    if hint is not None:
        return [{"field": str(loc[0]), "message": hint.message}]
    return [{"field": dotted(loc), "message": error["msg"]}]


def dotted(loc: tuple[int | str, ...]) -> str:
    """A location as the API names fields: `templates.sms.ko.text`, `events[3].event`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path
