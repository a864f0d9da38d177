FROM busybox
ENV V=val
RUN ["sh", "-c", "echo $V $HOME > /out"]
