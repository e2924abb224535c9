# commgrid in a container, data in a volume, both ports published:
#   docker build -t commgrid . && docker run --rm -p 7070:7070 -p 7443:7443 -v commgrid-data:/data commgrid
# Everything commgrid keeps (store, keys, CA) lives in /data; `docker run … commgrid info` reads it too.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 commgrid && mkdir /data && chown commgrid /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m pip install --no-cache-dir .

USER commgrid
ENV COMMGRID_DATA_DIR=/data COMMGRID_HOST=0.0.0.0
VOLUME /data
EXPOSE 7070 7443
ENTRYPOINT ["commgrid"]
CMD ["serve"]
