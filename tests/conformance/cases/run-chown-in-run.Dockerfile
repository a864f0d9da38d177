FROM busybox
RUN mkdir /o && touch /o/f && chown -R 1000:1000 /o && chown 65534 /o/f
