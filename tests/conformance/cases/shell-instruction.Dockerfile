FROM busybox
SHELL ["/bin/sh", "-ec"]
RUN echo shell > /out
CMD echo from-shell
ENTRYPOINT exec true
