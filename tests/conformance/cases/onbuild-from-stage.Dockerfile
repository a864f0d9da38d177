FROM busybox AS base
ONBUILD RUN echo triggered > /onbuild
FROM base
RUN cat /onbuild > /out
