"""Container statuses as the kubelet writes them, and the kubelet's times (whole seconds, UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _base(container: Mapping[str, Any]) -> dict[str, Any]:
    image = container.get("image", "")
    return {"name": container["name"], "image": image, "imageID": f"sim://{image}", "restartCount": 0}


def waiting(container: Mapping[str, Any], reason: str, message: str | None = None) -> dict[str, Any]:
    state = {"reason": reason}
    if message:
        state["message"] = message
    return {**_base(container), "ready": False, "started": False, "state": {"waiting": state}}


def running(container: Mapping[str, Any], started: datetime, ready: bool) -> dict[str, Any]:
    return {
        **_base(container),
        "ready": ready,
        "started": True,
        "containerID": f"sim://{container['name']}",
        "state": {"running": {"startedAt": format_time(started)}},
    }


def completed(container: Mapping[str, Any], finished: datetime, started: datetime | None = None) -> dict[str, Any]:
    return {
        **_base(container),
        "ready": False,
        "started": False,
        "containerID": f"sim://{container['name']}",
        "state": {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": format_time(started or finished),
                "finishedAt": format_time(finished),
            }
        },
    }
