FROM busybox
RUN --mount=type=cache,target=/var/cache/app,uid=1000,gid=1000,mode=0700,id=conf stat -c "%a %u %g" /var/cache/app > /out
