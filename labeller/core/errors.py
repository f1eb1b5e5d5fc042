"""Errors that services raise and the API turns into clear 4xx answers."""

from dataclasses import dataclass, field


@dataclass
class DomainError(Exception):
    message: str
    code: str = "invalid"
    http_status: int = 400
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def field_error(field_name: str, message: str, code: str = "invalid") -> DomainError:
    """A 400 that names the field at fault, in the shape DRF uses for serializer errors."""
    return DomainError(message=f"{field_name}: {message}", code=code, extra={"errors": {field_name: [message]}})
