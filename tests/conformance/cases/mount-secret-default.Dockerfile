FROM busybox
RUN --mount=type=secret,id=s cat /run/secrets/s > /out
#conformance: args=--secret id=s,src={ctx}/secret.txt
