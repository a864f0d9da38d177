FROM busybox AS src
RUN mkdir -p /hl/sub && echo h > /hl/one && ln /hl/one /hl/two && ln /hl/one /hl/sub/three && chmod 4711 /hl/one
FROM busybox
COPY --from=src /hl /hl
COPY --from=src /hl/one /hl/two /pair/
