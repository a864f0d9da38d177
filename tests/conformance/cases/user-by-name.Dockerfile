FROM busybox
USER app
RUN id > /tmp/id && touch /tmp/made-by-app
