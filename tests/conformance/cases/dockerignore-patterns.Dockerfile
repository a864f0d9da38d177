FROM busybox
COPY . /all/
#conformance: context=patterns
