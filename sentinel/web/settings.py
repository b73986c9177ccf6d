"""Settings of the web dashboard, validated where the config is loaded (sentinel.config) and taken
as they are by the part that uses them: the part does not import the whole config."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sentinel.netaddr import host_is_loopback


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Serve the live dashboard (read-only) from the daemon.")] = True
    host: Annotated[str, Field(min_length=1, description="Address to listen on; off loopback a token is required.")] = (
        "127.0.0.1"
    )
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port of the dashboard.")] = 8765
    token: Annotated[
        str | None, Field(description="Access token (open http://HOST:PORT/?token=...), or credential:NAME; "
                                      "required off loopback.")
    ] = None
    push_interval_s: Annotated[float, Field(gt=0, le=5, description="How often the page is updated, s.")] = 1.0
    history_minutes: Annotated[
        float, Field(gt=0, le=1440, description="Window scores kept per source for the timeline and alert views.")
    ] = 60.0

    @model_validator(mode="after")
    def _token_off_loopback(self) -> WebConfig:
        if self.enabled and self.token is None and not host_is_loopback(self.host):
            raise ValueError(f"host {self.host!r} is not loopback: set web.token (or credential:NAME) "
                             "or bind 127.0.0.1")
        return self
