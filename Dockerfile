# Two stages: torch is needed once, to export the encoder to ONNX; the image that serves has
# only ONNX Runtime + numpy + FAISS.
FROM python:3.11-slim AS export
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY embedder embedder
COPY index index
COPY kennelgate kennelgate
COPY migrations migrations
RUN pip install --no-cache-dir '.[export]' \
 && KENNELGATE_MODEL_CACHE=/models kennelgate model build efficientnet-lite0

FROM python:3.11-slim
WORKDIR /srv/kennelgate
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY embedder embedder
COPY index index
COPY kennelgate kennelgate
COPY migrations migrations
COPY scripts scripts
RUN pip install --no-cache-dir '.[openvino]' && useradd --system --home /data kennelgate && mkdir -p /data && chown kennelgate /data
COPY --from=export /models /models
ENV KENNELGATE_MODEL_CACHE=/models KENNELGATE_HOME=/data KENNELGATE_BIN=kennelgate
USER kennelgate
EXPOSE 8000
CMD ["kennelgate", "serve", "--host", "0.0.0.0", "--port", "8000"]
