"""The web console: the registry, deployments, monitoring and model cards in a browser.

Server-rendered pages (Starlette and Jinja2 templates, htmx for in-place updates, charts
as inline SVG by matplotlib), every asset in the wheel: it works offline. A channel of
layer 10: it reads and changes the registry through the calls the CLI makes
(`evaluation.promote` and its gates, `Registry.rollback`, `routing.registered.change`,
`monitor.log_windows`, `reports.card`), and imports no other channel.

    scorehouse ui --port 8500 --allow-writes       # its own port
    scorehouse serve churn@production --ui         # under /ui of the scoring server

    from scorehouse.ui import UiSettings, create_app
    app = create_app(UiSettings(registry="sqlite:///registry.db"))
"""

from .app import create_app
from .settings import UiSettings

__all__ = ["UiSettings", "create_app"]
