#!/bin/sh
echo "hello from $(hostname): $(cat /etc/motd)"
