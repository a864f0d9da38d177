ARG BASE=busybox
ARG UNUSED=u
FROM ${BASE}
ARG BASE
RUN echo "base=$BASE unused=$UNUSED" > /out
