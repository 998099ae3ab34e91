<?php
/* Русские тексты install/step.php. */
$MESS['ORDERBRIDGE_STEP_INSTALL_OK'] = 'orderbridge установлен. Настройте его: Настройки → Настройки модулей → orderbridge.';
$MESS['ORDERBRIDGE_STEP_INSTALL_ERROR'] = 'orderbridge не установлен';
$MESS['ORDERBRIDGE_STEP_BACK'] = 'Вернуться в список';
