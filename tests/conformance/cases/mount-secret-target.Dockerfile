FROM busybox
RUN --mount=type=secret,id=s,target=/etc/app/key cat /etc/app/key > /out
#conformance: args=--secret id=s,src={ctx}/secret.txt
