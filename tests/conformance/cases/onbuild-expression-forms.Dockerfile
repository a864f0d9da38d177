FROM busybox
ONBUILD   run   echo x
onbuild ENV A=1   B=2
ONBUILD COPY ["a", "b"]
