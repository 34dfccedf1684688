"""ScenePush studio: the Streamlit entrypoint.

Sets the page config, the sidebar (language, database, active model) and the
navigation over the pages in `pages/`. To add a page, append a row to `PAGES`
and its title key to `recsys_core/i18n.py`.

A page's URL path must differ from its file name: Streamlit still knows the
`pages/` folder's old automatic pages (URL = file name) on a server's first run
and in every AppTest run, and a colliding URL would run the page file alone,
without this frame (no sidebar, no language).
"""

import pandas as pd  # noqa: F401 — before plotly (GOTCHAS: pandas/plotly import race on a fresh server)
import streamlit as st

from pages._common import sidebar, tr

st.set_page_config(page_title="ScenePush", page_icon=":material/campaign:", layout="wide")

sidebar()

# (file, i18n title key, icon, URL path — never the file's own name); the first is the default page.
PAGES = [
    ("pages/overview.py", "nav.overview", ":material/dashboard:", "data-overview"),
    ("pages/behaviour.py", "nav.behaviour", ":material/query_stats:", "shopper-behaviour"),
    ("pages/scenario.py", "nav.scenario", ":material/schedule:", "scenario-simulator"),
    ("pages/why.py", "nav.why", ":material/psychology_alt:", "why-pushed"),
    ("pages/push_review.py", "nav.push_review", ":material/fact_check:", "push-review"),
]

page = st.navigation(
    [
        st.Page(path, title=tr(title), icon=icon, url_path=url, default=(i == 0))
        for i, (path, title, icon, url) in enumerate(PAGES)
    ]
)
page.run()
