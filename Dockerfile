FROM python:3.11-slim
# A CPU-only torch keeps the image small; point TORCH_INDEX_URL at a CPU wheel index if your registry has one.
ARG TORCH_INDEX_URL=""
ENV HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX_URL"; fi \
 && pip install --no-cache-dir -e .
VOLUME ["/data"]
ENTRYPOINT ["newsclust", "--home", "/data"]
CMD ["serve"]
