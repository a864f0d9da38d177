FROM busybox
USER 1000
RUN id > /tmp/id1 && touch /tmp/f1
USER 4321
RUN id > /tmp/id2 && touch /tmp/f2
USER app:nogroup
RUN id > /tmp/id3 && touch /tmp/f3
