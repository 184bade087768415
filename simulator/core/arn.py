"""Lambda function ARNs: unqualified, `:N`, `:$LATEST` and `:alias`."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from simulator.errors import ArnError

LATEST = "$LATEST"

# The returned-ARN pattern of the Lambda API model, anchored, with the name/qualifier limits.
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:"
    r"(?P<region>[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:(?P<function>[a-zA-Z0-9_-]{1,64})"
    r"(:(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)
_VERSION = re.compile(r"^[0-9]+$")
ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9_-]+)$")
ALIAS_NAME_PATTERN = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"  # as AWS prints it in its error text

QualifierKind = Literal["unqualified", "latest", "version", "alias"]


def qualifier_kind(qualifier: str | None) -> QualifierKind:
    if qualifier is None:
        return "unqualified"
    if qualifier == LATEST:
        return "latest"
    return "version" if _VERSION.match(qualifier) else "alias"


@dataclass(frozen=True, order=True)
class FunctionArn:
    partition: str
    region: str
    account: str
    function: str
    qualifier: str | None = None

    @classmethod
    def parse(cls, text: str) -> FunctionArn:
        match = _ARN.match(text) if isinstance(text, str) else None
        if match is None:
            raise ArnError(str(text))
        return cls(
            match["partition"],
            match["region"],
            match["account"],
            match["function"],
            match["qualifier"],
        )

    @classmethod
    def build(
        cls,
        region: str,
        account: str,
        function: str,
        qualifier: str | None = None,
        partition: str = "aws",
    ) -> FunctionArn:
        return cls(partition, region, account, function, qualifier)

    @property
    def kind(self) -> QualifierKind:
        return qualifier_kind(self.qualifier)

    @property
    def unqualified(self) -> FunctionArn:
        return replace(self, qualifier=None)

    def with_qualifier(self, qualifier: str | None) -> FunctionArn:
        return replace(self, qualifier=qualifier)

    def __str__(self) -> str:
        base = f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{self.function}"
        return base if self.qualifier is None else f"{base}:{self.qualifier}"
