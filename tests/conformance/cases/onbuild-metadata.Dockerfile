FROM busybox
ONBUILD RUN echo triggered > /onbuild
ONBUILD ENV TRIGGER=1
