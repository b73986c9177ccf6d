"""Settings of the MQTT sink, validated where the config is loaded (sentinel.config) and taken
as they are by the part that uses them: the part does not import the whole config."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class HomeAssistantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Publish Home Assistant MQTT discovery (one device per daemon).")] = (
        False
    )
    discovery_prefix: Annotated[str, Field(pattern=r"^[^#+]+$", description="Home Assistant's discovery prefix.")] = (
        "homeassistant"
    )
    device_name: Annotated[
        str | None, Field(description="Name of the daemon's device in Home Assistant; null = Sentinel <client_id>.")
    ] = None


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Also send alerts to an MQTT broker, from the journal.")] = False
    host: Annotated[str, Field(min_length=1, description="Broker host name or address.")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, description="Broker port (1883 plain, 8883 usually TLS).")] = 1883
    tls: Annotated[bool, Field(description="Connect with TLS (server certificate checked).")] = False
    ca_file: Annotated[str | None, Field(description="CA certificate for TLS; null = the system's CAs.")] = None
    username: Annotated[str | None, Field(description="User name; null = anonymous.")] = None
    password: Annotated[
        str | None, Field(description="Password, or credential:NAME for a systemd credential (keeps it out of here).")
    ] = None
    client_id: Annotated[
        str | None, Field(description="MQTT client id, also the Home Assistant device id; null = sentinel-<host>.")
    ] = None
    topic_prefix: Annotated[
        str, Field(pattern=r"^[^#+]+$", description="Topics are <prefix>/<source>/alert|status|score.")
    ] = "sentinel"
    keepalive_s: Annotated[int, Field(ge=5, le=3600, description="MQTT keep-alive, s (offline will after 1.5x).")] = (
        30
    )
    reconnect_max_s: Annotated[
        float, Field(gt=0, description="Longest wait between reconnect attempts to a broker that is down, s.")
    ] = 10.0
    cursor: Annotated[
        str | None, Field(description="File holding how far into the journal the broker has acknowledged; "
                                      "null = <journal>.mqtt-cursor.")
    ] = None
    home_assistant: Annotated[HomeAssistantConfig, Field(description="Home Assistant discovery.")] = (
        HomeAssistantConfig()
    )

    @field_validator("home_assistant", mode="before")
    @classmethod
    def _ha_shorthand(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v  # `home_assistant: true` as in the README

    @model_validator(mode="after")
    def _tls_needs(self) -> MqttConfig:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false; set tls: true (or drop ca_file)")
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        return self


_HHMM = r"([01]\d|2[0-3]):[0-5]\d"


class NotifyRule(BaseModel):
    """One notification target for people (through Apprise) and what reaches it."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        str, Field(min_length=1, description="Apprise URL (ntfy://, tgram://, mailto://, json://, ... ~100 services), "
                   "or credential:NAME for a systemd credential holding it (URLs carry tokens).")
    ]
    name: Annotated[
        str | None, Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Names this rule's send cursor "
                          "(<journal>.notify-<name>); null = its position in the list.")
    ] = None
    sources: Annotated[
        list[str] | None, Field(description="Sources whose alerts this rule sends; null = all.")
    ] = None
    min_score: Annotated[
        float | None, Field(description="Send only alerts whose opening score is at least this; null = every alert.")
    ] = None
    quiet_hours: Annotated[
        str | None, Field(pattern=rf"^{_HHMM}-{_HHMM}$", description="Local time span HH:MM-HH:MM (may cross "
                          "midnight) in which alerts are held (still journalled), then summarised in one message.")
    ] = None
    max_per_hour: Annotated[
        int | None, Field(ge=1, description="At most this many messages in any hour; what is held back is "
                          "summarised once there is room. null = no cap.")
    ] = None
    attach_clip: Annotated[
        bool, Field(description="Attach the event's WAV clip where the service takes attachments.")
    ] = True
