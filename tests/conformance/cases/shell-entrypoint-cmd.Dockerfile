FROM busybox
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
ENTRYPOINT echo "$HOME"
CMD echo second
RUN echo x | cat > /out
