"""ScenePush studio: the Streamlit entrypoint.

Sets the page config, the sidebar (language, database, active model) and the
navigation over the pages in `views/`. To add a page, append a row to `PAGES`
and its title key to `recsys_core/i18n.py`.

The page files live in `views/`, not `pages/`: beside a `pages/` folder Streamlit
runs its automatic pages (URL = file name) on a server's first run, so a shared
link opened first answered "Page not found" before this navigation took over.
URL paths are part of shared links: keep them stable.
"""

import pandas as pd  # noqa: F401 — before plotly (docs/pitfalls.md: pandas/plotly import race on a fresh server)
import streamlit as st

from views._common import sidebar, tr

st.set_page_config(page_title="ScenePush", page_icon=":material/campaign:", layout="wide")

sidebar()

# (file, i18n title key, icon, URL path — part of shared links); the first is the default page.
PAGES = [
    ("views/overview.py", "nav.overview", ":material/dashboard:", "data-overview"),
    ("views/behaviour.py", "nav.behaviour", ":material/query_stats:", "shopper-behaviour"),
    ("views/scenario.py", "nav.scenario", ":material/schedule:", "scenario-simulator"),
    ("views/why.py", "nav.why", ":material/psychology_alt:", "why-pushed"),
    ("views/push_review.py", "nav.push_review", ":material/fact_check:", "push-review"),
    ("views/model_cards.py", "nav.models", ":material/leaderboard:", "models"),
    ("views/monitoring.py", "nav.monitoring", ":material/monitor_heart:", "model-monitoring"),
]

page = st.navigation(
    [
        st.Page(path, title=tr(title), icon=icon, url_path=url, default=(i == 0))
        for i, (path, title, icon, url) in enumerate(PAGES)
    ]
)
page.run()
