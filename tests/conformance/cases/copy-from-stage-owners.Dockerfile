FROM busybox AS src
RUN mkdir -p /s/d && echo f > /s/d/f && chown -R 1000:65534 /s && chmod 710 /s/d && ln -s d/f /s/link
FROM busybox
COPY --from=src /s /copied
COPY --from=src /s/link /followed
COPY --from=src /s/d/* /glob/
