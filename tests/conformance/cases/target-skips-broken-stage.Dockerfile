FROM busybox AS first
RUN echo first > /f
FROM busybox AS broken
EXPOSE notaport
USER ${UNSET:?must be set}
#conformance: args=--target first
