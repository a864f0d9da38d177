FROM busybox
RUN mkdir -p /e/dir && echo old > /e/dir/a.txt && chmod 700 /e/dir
COPY --chown=1000:1000 dir /e/dir/
COPY --chown=app hello.txt /e/
