FROM busybox
COPY glob/a?.txt glob/*.log /q/
