"""ScenePush core: data store, importers, models, evaluation and explanations.

Never imports streamlit; the app in `app.py` and `views/` is a thin layer over this package.
"""

__version__ = "0.1.0"
