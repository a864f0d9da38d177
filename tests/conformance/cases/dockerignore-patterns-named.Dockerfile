FROM busybox
COPY dir /d/
COPY glob/* /g/
COPY links/ /l/
#conformance: context=patterns
