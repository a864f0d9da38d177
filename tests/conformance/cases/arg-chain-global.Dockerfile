ARG V=1
ARG BASE=busybox
FROM ${BASE} AS one
ARG V
ARG W=${V}x
RUN echo "$V $W" > /out
FROM ${BASE}
ARG V=local
ARG UNDECLARED_ELSEWHERE
RUN echo "$V [$UNDECLARED_ELSEWHERE]" > /out
#conformance: args=--build-arg V=cli --build-arg NOT_DECLARED=x
