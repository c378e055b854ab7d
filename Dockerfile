# HARD Lab in a container: the lab on port 8501, offline (the shipped teachers and VAE are in assets/).
#   docker build -t hard-lab .
#   docker run --rm -p 8501:8501 hard-lab           # then open http://localhost:8501
# Runs go to /lab/runs; mount a volume there to keep them: -v $PWD/runs:/lab/runs
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HARD_LAB_RUNS=/lab/runs
# curl for the HEALTHCHECK; chromium for the Compare page's PNG export (kaleido drives it)
RUN apt-get update && apt-get install -y --no-install-recommends curl chromium && rm -rf /var/lib/apt/lists/*
WORKDIR /lab

COPY requirements.txt pyproject.toml ./
RUN pip install -r requirements.txt
COPY hard_core/ hard_core/
COPY app/ app/
COPY assets/ assets/
COPY .streamlit/ .streamlit/
COPY README.md ./
RUN pip install --no-deps --no-build-isolation -e . && mkdir -p /lab/runs \
    && python -m hard_core --help > /dev/null

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl --fail http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "app/streamlit_app.py", "--server.address=0.0.0.0", "--server.port=8501"]
