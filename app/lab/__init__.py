"""Streamlit-free helpers of the lab's pages: run processes and their queue (`runs`), plotly figures
(`figures`) and composed images (`images`). Pages import them as `from lab import ...` (Streamlit puts
app/ on sys.path)."""
