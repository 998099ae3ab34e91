<?php
/*
 * The install step page: CMain::IncludeAdminFile() includes it after DoInstall, inside the
 * admin's prolog and epilog. It shows the reason when the install failed (DoInstall put it in
 * $APPLICATION->ThrowException), else that the module is installed, and a way back.
 */

use Bitrix\Main\Localization\Loc;

if (!check_bitrix_sessid()) {
	return;
}
Loc::loadMessages(__FILE__);

global $APPLICATION;
if ($exception = $APPLICATION->GetException()) {
	CAdminMessage::ShowMessage([
		'TYPE' => 'ERROR',
		'MESSAGE' => Loc::getMessage('ORDERBRIDGE_STEP_INSTALL_ERROR'),
		'DETAILS' => $exception->GetString(),
		'HTML' => false,
	]);
} else {
	CAdminMessage::ShowNote(Loc::getMessage('ORDERBRIDGE_STEP_INSTALL_OK'));
}
?>
<form action="<?= htmlspecialcharsbx($APPLICATION->GetCurPage()) ?>">
	<input type="hidden" name="lang" value="<?= htmlspecialcharsbx(LANGUAGE_ID) ?>">
	<input type="submit" value="<?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_STEP_BACK')) ?>">
</form>
